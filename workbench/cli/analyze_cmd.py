"""``qwb analyze``: layer-by-layer FP32 vs INT8 diff, ranked worst layers with hints, JSON output."""

from __future__ import annotations

import argparse
import json
import math

from analyzers.deployed_layers import own_gap
from analyzers.kernel_gap import figure_label
from analyzers.ranking import RANKINGS, Thresholds

from ..analysis import DEFAULT_KERNELS, KERNEL_MODES, analyze
from ..errors import WorkbenchError
from ..hint_measure import measure_activations_16bit
from ..formatting import EFFECTIVE_SQNR_DEF, fmt_db, kernels_label, mac_share_text, output_figures
from ..safe_paths import write_text
from ..kernel_remedies import parse_session_options
from .common import ConsoleTask, add_metric_arg, add_model_args, add_session_option_arg, open_session, print_notes


def register(sub) -> None:
    p = sub.add_parser("analyze", help="find the layers that lose accuracy, and why",
                       description="Quantize with the recipe, then compare every quantized layer of the INT8 (QDQ) "
                       "model with FP32 on the evaluation data: cumulative error (propagated), isolated error "
                       "(the layer alone quantized), weight error, and root-cause hints.")
    add_model_args(p)
    add_metric_arg(p)
    p.add_argument("--samples", type=int, metavar="N", help="analyse only the first N evaluation samples")
    p.add_argument("--json", metavar="OUT", help="write the full result as JSON (a public, versioned format)")
    p.add_argument("--rank", choices=RANKINGS, default=None,
                   help="order of the table (default: isolated error, i.e. the layers that cause error; with "
                   "--kernels deployed, which has no isolated error: introduced, the SQNR each layer loses as deployed)")
    p.add_argument("--top", type=int, default=10, metavar="K", help="rows in the table (default 10)")
    p.add_argument("--reservoir", type=int, default=0, metavar="N",
                   help="keep N sampled (fp32, int8) value pairs per layer in the JSON, for scatter plots")
    p.add_argument("--no-isolated", action="store_true", help="skip isolated error (faster)")
    p.add_argument("--no-measure-hints", action="store_true", help="do not time the 16-bit-activations hint when it "
                   "fires (by default its INT8 MAC share and latency are measured on this CPU, a few seconds)")
    p.add_argument("--kernels", choices=KERNEL_MODES, default=DEFAULT_KERNELS,
                   help="how INT8 runs for the output figures: exact (Q/DQ as written, as qdq_loss_debug), deployed "
                   "(onnxruntime with full optimizations on this CPU: what ships) or both (default: the deployed "
                   "pass costs one plain inference, and exact explains the layers). Layer figures are exact")
    p.add_argument("--no-remedies", action="store_true",
                   help="when the deployed figures are worse than the exact ones, only name the cause: skip measuring "
                   "the remedies (by default they are measured, only when there is a gap: a quantize per recipe remedy, "
                   "calibration reused, and one shared deployed pass; a remedy is only worth suggesting with its "
                   "figure on this model and CPU)")
    add_session_option_arg(p)
    g = p.add_argument_group("flagging thresholds")
    g.add_argument("--flag-below-median", type=float, default=6.0, metavar="DB",
                   help="flag layers whose isolated SQNR is this far below the median layer (default 6 dB)")
    g.add_argument("--flag-floor", type=float, default=20.0, metavar="DB",
                   help="flag layers whose isolated SQNR is below this (default 20 dB)")
    g.add_argument("--flag-introduced", type=float, default=6.0, metavar="DB",
                   help="flag layers that lose this much cumulative SQNR themselves (default 6 dB)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:


    check_numbers(args)
    task = ConsoleTask()
    s = open_session(args, [args.json])
    print_notes(s.prepared.notes)
    th = Thresholds(args.flag_below_median, args.flag_floor, args.flag_introduced)
    r = analyze(s, samples=args.samples, task=task, thresholds=th, reservoir=args.reservoir,
                isolated=not args.no_isolated, kernels=args.kernels, remedies=not args.no_remedies,
                session_options=parse_session_options(args.session_option))
    if not args.no_measure_hints:
        measure_activations_16bit(s, s.recipe, r, task)
    task.done()
    print_report(r, s, args.rank or default_rank(r), args.top)
    if args.json:
        d = r.to_dict()
        if args.reservoir:
            d["reservoirs"] = {t: {"fp32": x.tolist(), "int8": y.tolist()} for t, (x, y) in r.reservoirs.items()}
        write_text(args.json, json.dumps(d, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


#: the most value pairs kept per layer for scatter plots (each pair is two floats in memory and in the JSON)
MAX_RESERVOIR = 1_000_000


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse numbers no analysis can use (a negative count, NaN thresholds), before any work."""
    if args.samples is not None and args.samples < 1:
        raise WorkbenchError(f"--samples must be at least 1, not {args.samples}", "pass e.g. --samples 100")
    if args.top < 1:
        raise WorkbenchError(f"--top must be at least 1, not {args.top}", "pass e.g. --top 10")
    if not 0 <= args.reservoir <= MAX_RESERVOIR:
        raise WorkbenchError(f"--reservoir must be 0 to {MAX_RESERVOIR:,}, not {args.reservoir:,}",
                             "pass e.g. --reservoir 512")
    for flag in ("flag_below_median", "flag_floor", "flag_introduced"):
        if not math.isfinite(getattr(args, flag)):
            raise WorkbenchError(f"--{flag.replace('_', '-')} must be a finite number of dB, not {getattr(args, flag)}",
                                 f"pass e.g. --{flag.replace('_', '-')} 6")


def default_rank(r) -> str:
    """Isolated error ranks the layers that cause error; a deployed-only analysis has none (it needs the exact
    simulation), so it ranks by the SQNR each layer loses itself as deployed (``introduced``)."""
    return "introduced" if r.layer_kernels == "deployed" else "isolated"


def _f(x, fmt="{:.1f}") -> str:
    """A dB figure as every screen prints it (``fmt_db``), with the digits ``fmt`` asks for."""
    return fmt_db(x, 2 if fmt == "{:.2f}" else 1)


def kernel_gap(lay):
    """The layer's kernel gap (exact SQNR - deployed SQNR, dB), or None."""
    return (lay.deployed or {}).get("kernel_gap_db")


def _nz(x):
    """``x`` with -0.0-looking rounding noise shown as 0."""
    return 0.0 if x is not None and abs(x) < 0.05 else x


def print_kernel_gaps(r) -> None:
    """The deployed per-layer view: where onnxruntime's fused kernels depart from the exact simulation."""
    mapped = [lay for lay in r.layers if lay.deployed]
    if r.layer_kernels == "deployed":
        print(f"deployed {len(mapped)} of {len(r.layers)} layers read from onnxruntime's fused kernels "
              f"({kernels_label('deployed')}); the layer SQNRs above are theirs, against FP32; exact figures: "
              "none (see the note)")
        return
    departs = [lay for lay in r.layers if any(h.code == "kernel_departs" for h in lay.hints)]
    worst = max(mapped, key=lambda lay: kernel_gap(lay) or 0.0)
    print(f"deployed {len(mapped)} of {len(r.layers)} layers read from onnxruntime's fused kernels ({kernels_label('deployed')}); "
          f"k.gap = exact minus deployed cumulative SQNR (dB); largest {_f(kernel_gap(worst), '{:.2f}')} dB at {worst.node}")
    if not departs:
        print("         no kernel departs from the exact simulation (none loses 1 dB or more fed the simulation's inputs)")
    for lay in departs:
        d = lay.deployed
        own = d.get("own_gap_db")
        print(f"  kernel_departs  {lay.node}: {d['kernel']} gap {_f(d['kernel_gap_db'], '{:.2f}')} dB"
              + (f" (its kernel alone, fed the simulation's inputs: {_f(own, '{:.2f}')} dB)"
                 if own is not None else f" ({_f(own_gap(d), '{:.2f}')} dB over its upstream layers)")
              + f", {d['lsb_diff_share']:.1%} of values >= 1 LSB off (max {d.get('max_lsb_diff', '-')}); "
              f"deployed SQNR {_f(d['sqnr_db'])} dB vs exact {_f(d.get('exact_sqnr_db'))} dB")


def print_report(r, s, rank: str, top: int) -> None:
    print(f"model    {r.model}  ({len(s.graph.nodes)} nodes)")
    print(f"data     {r.samples} evaluation samples from {s.eval_data.description}")
    if r.kernel_gap is not None and r.kernel_gap.integer_path is not None:
        print(f"cpu      integer path {r.kernel_gap.integer_path.label()}")
    for mode in dict.fromkeys(o.kernels for o in r.outputs):
        print(f"kernels  {kernels_label(mode)}")
    for o in r.outputs:
        print(f"output   {o.name} ({o.kind}, {o.kernels}): " + ", ".join(output_figures(o)))
        drops = [c for c in o.per_class if c.accuracy_int8 < c.accuracy_fp32]
        if drops:
            worst = sorted(drops, key=lambda c: c.accuracy_int8 - c.accuracy_fp32)[:3]
            print("         classes losing accuracy: " + ", ".join(
                f"{c.label} ({c.accuracy_fp32:.0%} -> {c.accuracy_int8:.0%}, n={c.count})" for c in worst))
    print(f"compute  {mac_share_text(r.macs_by_precision)} (the recipe's layers; what onnxruntime runs in integer "
          "kernels: qwb bench)")
    flagged = [lay for lay in r.layers if lay.flagged]
    key = {"isolated": f"key = {EFFECTIVE_SQNR_DEF}, of the isolated layer",
           "cumulative": f"key = {EFFECTIVE_SQNR_DEF}, of the cumulative tensor"}.get(rank, "")
    deployed_only = r.layer_kernels == "deployed"
    print(f"layers   {len(r.layers)} analysed ({r.layer_kernels} kernels), {len(flagged)} flagged"
          + (" by the SQNR they lose as deployed (no isolated error without the exact simulation)" if deployed_only
             else "") + f"; ranked by {rank} error{'; ' + key if key else ''} "
          "(SQNR in dB, higher is better; ch = mean/min over channels with signal and error)")
    dep = any(lay.deployed for lay in r.layers) and not deployed_only
    cum_head = "deployed cum. (ch)" if deployed_only else "cumulative (ch)"
    head = (f"{'#':>3}  {'node':<28} {'op':<10} {'key':>5} {'isolated tensor (ch)':>20} {cum_head:>20} {'amp':>5} "
            f"{'intro':>6}" + (f" {'k.gap':>6}" if dep else "") + "  flag")
    print(head)
    for i, lay in enumerate(r.ranked(rank)[:top], 1):
        iso = lay.isolated
        iso_s = f"{_f(iso.sqnr_db)} ({_f(iso.channel_sqnr_mean)}/{_f(iso.channel_sqnr_min)})" if iso else "-"
        c = lay.cumulative
        cum_s = f"{_f(c.sqnr_db)} ({_f(c.channel_sqnr_mean)}/{_f(c.channel_sqnr_min)})"
        k = (iso.effective_sqnr_db if iso else None) if rank != "cumulative" else c.effective_sqnr_db
        k_s = _f(k) if rank in ("isolated", "cumulative") and k is not None else "-"
        print(f"{i:>3}  {lay.node[:28]:<28} {lay.op_type[:10]:<10} {k_s:>5} {iso_s:>20} {cum_s:>20} {_f(lay.amplification):>5} "
              f"{_f(lay.introduced_db):>6}" + (f" {_f(_nz(kernel_gap(lay))):>6}" if dep else "")
              + f"  {'YES' if lay.flagged else ''}")
        if lay.flagged or (i <= 3 and lay.hints):
            for h in lay.hints:
                print(f"       - {h.message}\n         try: {h.suggestion}")
    if dep or (deployed_only and any(lay.deployed for lay in r.layers)):
        print_kernel_gaps(r)
    print_kernel_gap(r)
    for h in r.hints:
        print(f"hint: {h.message}\n      try: {h.suggestion}")
    for note in r.notes:
        print(f"note: {note}")
    print(f"done in {r.elapsed_s:.2f} s, peak RSS {r.peak_rss_mb:.0f} MB")


def print_kernel_gap(r) -> None:
    """The deployed-vs-exact gap on the primary output and the remedies measured for it (when there is one)."""
    g = r.kernel_gap
    if g is None or g.metric_name is None:
        return
    fig = figure_label(g.metric_name)
    fmt = _gap_fmt(g.metric_name)
    if not g.significant:
        print(f"kernels  deployed {fig} {fmt(g.deployed)} vs exact {fmt(g.exact)}: no gap beyond rounding noise")
        return
    print(f"kernels  deployed {fig} {fmt(g.deployed)} vs exact {fmt(g.exact)}: the deployed INT8 model is worse; "
          f"cause: {g.cause}")
    if g.skipped:
        print(f"         {g.skipped}")
    for rem in g.remedies:
        share = "-" if rem.recovered_share is None else f"{rem.recovered_share:.0%}"
        val = "-" if rem.value is None else fmt(rem.value)
        mark = "  <- best" if rem.name == g.best else ("  (no integer kernels)" if not rem.int8_kernels else "")
        print(f"  remedy {rem.name:<18} {fig} {val:>8}  recovers {share:>5} of the gap{mark}")


def _gap_fmt(metric: str):
    """Sample shares as percentages, SQNR in dB."""
    return (lambda x: f"{x:.1f} dB") if metric == "sqnr_db" else (lambda x: f"{100 * x:.1f}%")
