"""``qwb report``: one self-contained HTML report (with JSON and Markdown beside it) of a quantization run."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..errors import WorkbenchError
from ..formatting import fmt_bytes, kernels_label, kind_figures, mac_share_text
from ..outputs import with_metrics
from ..recipe import Recipe
from ..report import build_report, load_report, outputs_for, write_report
from ..report.files import RENDERERS
from .common import (
    ConsoleTask,
    add_metric_arg,
    add_model_args,
    check_paths,
    metric_overrides,
    open_session,
    print_notes,
)


def register(sub) -> None:
    p = sub.add_parser("report", help="write a shareable HTML/JSON/Markdown report of a quantization run",
                       description="Quantize with the recipe, analyse every layer against FP32, and write one "
                       "self-contained HTML file (opens offline, prints cleanly) with the model, environment, "
                       "recipe, output metrics, worst layers with hints, SQNR along depth, histograms with "
                       "calibration ranges, benchmarks, the fix for other toolchains and the command to reproduce. "
                       "An .html output also gets .json and .md files beside it.")
    add_model_args(p)
    add_metric_arg(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="report file: .html (plus .json and .md beside it), .json or .md")
    p.add_argument("--compare", metavar="OTHER_RECIPE", help="a second recipe (the change to evaluate): the report "
                   "shows before (--recipe, or the defaults) vs after (this recipe) per layer, at the outputs and "
                   "in latency; the detailed sections describe the after run")
    p.add_argument("--bench", metavar="BACKEND[,BACKEND...]", help="also benchmark FP32 vs INT8 on these backends "
                   "(e.g. cpu), with INT8 coverage; both INT8 models when comparing")
    p.add_argument("--samples", type=int, metavar="N", help="analyse only the first N evaluation samples")
    p.add_argument("--title", help="the report's title (default: '<model>: INT8 quantization report')")
    p.add_argument("--only", action="store_true", help="write only the -o file (no .json/.md beside an .html)")
    p.add_argument("--tune", metavar="TUNE.json", help="a `qwb tune --json` result: the report shows its Pareto plot "
                   "and points, the chosen point being the one whose recipe the report's run uses (e.g. --recipe "
                   "tuned.toml)")
    p.add_argument("--from", dest="from_json", metavar="REPORT.json",
                   help="re-render a report from its saved JSON (no model or data needed)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    try:
        outputs = outputs_for(args.output, only=args.only)
    except ValueError as e:
        raise WorkbenchError(str(e), "pass -o report.html (or .json / .md)") from e
    check_paths(args, outputs)
    if args.samples is not None and args.samples < 1:
        raise WorkbenchError(f"--samples must be at least 1, not {args.samples}", "pass e.g. --samples 100")
    t0 = time.perf_counter()
    if args.from_json:
        try:
            report = load_report(args.from_json)
            doc = report.to_dict()
            for render in RENDERERS.values():  # a damaged document fails here, not half way through writing
                render(doc)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
            raise WorkbenchError(f"{args.from_json} is not a readable Quant Workbench report "
                                 f"({type(e).__name__}: {str(e)[:300]})",
                                 "pass a .json file written by qwb report") from e
    else:
        report = _build(args, build_report)
    written = write_report(report, args.output, only=args.only)
    _print_summary(report)
    for p in written:
        print(f"wrote    {p}  ({fmt_bytes(p.stat().st_size)})")
    print(f"done in {time.perf_counter() - t0:.2f} s")
    return 0


def _build(args, build_report):

    task = ConsoleTask()
    s = open_session(args, outputs_for(args.output, only=args.only))
    print_notes(s.prepared.notes)
    other = with_metrics(Recipe.load(args.compare), metric_overrides(args, s)) if args.compare else None
    backends = [b.strip() for b in args.bench.split(",") if b.strip()] if args.bench else []
    tune = read_tune(args.tune) if getattr(args, "tune", None) else None
    report = build_report(s, compare_recipe=other, compare_source=args.compare, samples=args.samples,
                          bench=backends, command=_argv(), title=args.title, tune=tune, task=task)
    task.done()
    return report


def read_tune(path: str) -> dict:
    """A ``qwb tune --json`` document, checked for what the report reads (target, points with recipes)."""
    fix = "pass the file `qwb tune ... --json TUNE.json` wrote"
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except OSError as e:
        raise WorkbenchError(f"--tune {path}: cannot read it ({e.strerror or e})", fix) from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WorkbenchError(f"--tune {path} is not JSON ({e})", fix) from e
    if not (isinstance(d, dict) and isinstance(d.get("target"), str) and isinstance(d.get("points"), list)
            and all(isinstance(p, dict) and isinstance(p.get("recipe"), dict) for p in d["points"])):
        raise WorkbenchError(f"--tune {path} is not a qwb tune result (no target and points)", fix)
    return d


def _argv() -> list[str] | None:
    """``qwb`` + the arguments as typed (what the report's Reproduce section shows); None when this process
    was not started as ``qwb report`` (then the command is rebuilt from the session)."""
    argv = [a for a in sys.argv[1:] if a != "--debug"]
    if not argv or argv[0] != "report":
        return None
    return ["qwb"] + argv


def _print_summary(report) -> None:
    s = report.final.summary
    if s is None:
        return
    for m in (s, s.deployed):
        if m is not None and m.accuracy_fp32 is not None and m.accuracy_int8 is not None:
            print(f"accuracy FP32 {m.accuracy_fp32:.2%}  INT8 {m.accuracy_int8:.2%}  "
                  f"({100 * (m.accuracy_int8 - m.accuracy_fp32):+.2f} points) ({kernels_label(m.kernels)})")
    for o in report.final.analysis.outputs:
        print(f"output   {o.name} ({o.kind}, {o.kernels}): " + ", ".join(
            kind_figures(o) + ([] if o.kind == "dense" else [f"SQNR {o.sqnr_db:.1f} dB"])))
    print(f"layers   {s.layers} analysed ({report.final.analysis.layer_kernels} kernels), {s.flagged} flagged" + (f"; worst {s.worst_node}" if s.worst_node else ""))
    print(f"compute  {mac_share_text(report.final.analysis.macs_by_precision)}")
    if report.verdict:
        print(f"verdict  {report.verdict}")
        for r in report.verdict_reasons:
            print(f"         - {r}")
    c = report.comparison
    if c is not None:
        print(f"compare  {len(c.changed())} layer(s) changed; after vs before: {c.verdict}"
              + (" (" + "; ".join(c.verdict_reasons) + ")" if c.verdict_reasons else ""))
        for lat in c.latency:
            if lat.before_ms is not None and lat.after_ms is not None:
                print(f"latency  {lat.backend}: INT8 p50 {lat.before_ms:.3g} -> {lat.after_ms:.3g} ms "
                      f"({lat.outcome or 'spread not measured'})")
