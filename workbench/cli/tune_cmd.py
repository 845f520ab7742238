"""``qwb tune``: the cheapest per-group mix of INT8, 16-bit and float that meets an accuracy target."""

from __future__ import annotations

import argparse
import json
import time

from backends.registry import BACKEND_NAMES

from ..errors import WorkbenchError
from ..formatting import fmt_bytes
from ..report import build_report, outputs_for, write_report
from ..safe_paths import write_text
from ..tune.moves import CANDIDATES, parse_candidates
from ..tune.search import OBJECTIVES, Point, TuneResult, TuneSpec, run_tune
from ..tune.target import EXAMPLES, parse_target
from .common import ConsoleTask, add_metric_arg, add_model_args, open_session, print_model_and_calibration

NATIVE_BACKENDS = tuple(b for b in BACKEND_NAMES if b != "neon-emulated")
DEMO_TARGET = "sqnr>=36"  # the demo's full INT8 model reaches ~33 dB: a target that needs a search


def register(sub) -> None:
    p = sub.add_parser("tune", help="find the fewest/cheapest layers to keep in 16-bit or float to meet a target",
                       description="Measure every group of layers that share quantized tensors (moved alone to "
                       "16-bit, to float, to another percentile; and quantized alone), then select moves greedily "
                       "and exactly (0/1 program) against the measured latency, INT8 MAC or size cost. Every "
                       "proposed point is verified on a held-back third of --eval that the search never saw. "
                       "Ctrl-C stops and keeps the best point found so far.")
    add_model_args(p)
    add_metric_arg(p)
    p.add_argument("--target", metavar="EXPR", help=f"accuracy target, e.g. {EXAMPLES} (default with --demo: "
                   f"{DEMO_TARGET})")
    p.add_argument("--candidates", metavar="LIST", help=f"moves to consider, comma-separated from "
                   f"{','.join(CANDIDATES)} (default: all)")
    p.add_argument("--max-float", type=int, metavar="K", help="keep at most K groups in float")
    p.add_argument("--objective", choices=OBJECTIVES, default="latency",
                   help="what a move costs: measured latency on --backend (default), INT8 MAC share, or model size")
    p.add_argument("--backend", default="cpu", choices=NATIVE_BACKENDS,
                   help="where latency is measured (default: cpu); emulated backends cannot time")
    p.add_argument("--time-budget", type=float, metavar="MIN", help="stop after MIN minutes, keeping the best "
                   "point so far")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="local worker processes for candidate evaluations (default: one per CPU core)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run candidate evaluations as Ray tasks on the cluster at ADDRESS (host:port), or on a new "
                   "local Ray without ADDRESS (pip install 'quant-workbench[ray]'); write --ray=ADDRESS before MODEL")
    p.add_argument("--ray-cpus", type=int, default=1, metavar="N", help="CPUs (and onnxruntime threads) per Ray task")
    p.add_argument("--probe-all", action="store_true", help="revert-one probes for every group (default: the "
                   "groups that carry 95%% of the quantize-one error; NNCF's exhaustive ranking, slower)")
    p.add_argument("-o", "--output", metavar="TUNED.toml", help="write the chosen recipe here")
    p.add_argument("--json", metavar="OUT", help="write every figure (points, groups, evaluations) as JSON")
    p.add_argument("--report", metavar="OUT.html", help="also write the report (qwb report) of the chosen point, "
                   "with the Tune section (Pareto plot and every point); .html also writes .json and .md beside it")
    p.set_defaults(func=run)


def spec_from_args(args: argparse.Namespace) -> TuneSpec:
    """The TuneSpec named by the flags; every bad value is refused before any work starts."""
    text = args.target or (DEMO_TARGET if args.demo else None)
    if not text:
        raise WorkbenchError("no --target given", f"pass --target, e.g. {EXAMPLES}")
    if args.max_float is not None and args.max_float < 0:
        raise WorkbenchError(f"--max-float {args.max_float} must be 0 or more", "e.g. --max-float 2")
    if args.time_budget is not None and args.time_budget <= 0:
        raise WorkbenchError(f"--time-budget {args.time_budget} must be a positive number of minutes",
                             "e.g. --time-budget 10")
    if args.workers < 0 or args.ray_cpus < 1:
        raise WorkbenchError("--workers must be 0 or more and --ray-cpus 1 or more", "e.g. --workers 2")
    return TuneSpec(parse_target(text), parse_candidates(args.candidates), args.max_float, args.objective,
                    args.backend, args.time_budget * 60 if args.time_budget else None, args.workers,
                    False if args.ray is None else args.ray, args.ray_cpus, probe_all=args.probe_all)


def run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    task = ConsoleTask()
    t0 = time.perf_counter()
    reports = []
    if args.report:
        try:
            reports = outputs_for(args.report)
        except ValueError as e:
            raise WorkbenchError(f"--report: {e}", "pass --report tuned.html (or .json / .md)") from e
    s = open_session(args, [args.output, args.json, *reports])
    print_model_and_calibration(s, task, complete=True)
    print(f"target   {spec.target.describe()} on {len(s.eval_data)} samples of {s.eval_data.description} "
          f"(a third held back for verification); objective {spec.objective} on {spec.backend}")

    def on_point(p: Point) -> None:
        task.done()
        print(f"point    {_row(p, spec.target.metric)}")

    result = run_tune(s, spec, task, on_point)  # Ctrl-C inside returns the points found so far
    task.done()
    _print(result)
    if result.best is not None and args.output:
        result.best_recipe().save(args.output)
        print(f"wrote    {args.output}")
    if args.json:
        write_text(args.json, json.dumps(dict(result.to_dict(), model=s.prepared.source), indent=2))
        print(f"wrote    {args.json}")
    if args.report:
        _report(args, s, result, task)
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0 if result.best is not None and result.best.met_holdout else 1


def _report(args: argparse.Namespace, s, result: TuneResult, task: ConsoleTask) -> None:
    """The report of the chosen point with the Tune section: what ``qwb report --recipe TUNED.toml --tune
    TUNE.json`` writes, without the two files in between (the rerun command in the report names them)."""
    if result.best is None:
        print(f"note: no point was verified: no report written ({args.report})")
        return
    tune = dict(result.to_dict(), model=s.prepared.source, chosen=result.points.index(result.best))
    report = build_report(s, recipe=result.best_recipe(), recipe_source=args.output, tune=tune,
                          command=_report_argv(args), task=task)
    task.done()
    for p in write_report(report, args.report):
        print(f"wrote    {p}  ({fmt_bytes(p.stat().st_size)})")


def _report_argv(args: argparse.Namespace) -> list[str]:
    """The ``qwb report`` command that rebuilds this report from the files ``-o`` and ``--json`` write (or would:
    recipe.toml, tune.json); the report makes its rerun command from it."""
    argv = ["qwb", "report"]
    if args.demo:
        argv.append("--demo")
    else:
        argv += [args.model, "--calib", args.calib] + (["--eval", args.eval] if args.eval else [])
    argv += ["--recipe", args.output or "recipe.toml", "--tune", args.json or "tune.json"]
    if getattr(args, "preprocess", "auto") != "auto":
        argv += ["--preprocess", args.preprocess]
    for m in getattr(args, "metric", None) or []:
        argv += ["--metric", m]
    return argv + ["-o", args.report]


def _fmt(v, f: str) -> str:
    return "–" if v is None else format(v, f)


def _row(p: Point, metric: str) -> str:
    f = ".2f" if metric == "sqnr" else ".4f"
    ok = "met" if p.met_holdout else "missed"
    return (f"{_fmt(p.search_metric, f):>8} {_fmt(p.holdout_metric, f):>9} {ok:>6} {_fmt(p.latency_ms, '.3f'):>10} "
            f"{_fmt(None if p.int8_mac_share is None else 100 * p.int8_mac_share, '.1f'):>6} "
            f"{fmt_bytes(p.size_bytes):>9}  {p.floats:>2}/{p.int16:<2} {p.label[:70]}")


def _print(r: TuneResult) -> None:
    t = r.target
    print(f"groups   {len(r.groups)} units of change (layers that share quantized tensors)")
    ranked = sorted(r.groups, key=lambda g: t.score(g.quantize_one))  # most sensitive first: the worst metric
    # with only that group quantized (the revert-one figures are masked when two groups are broken)
    for g in ranked[:5]:
        rev = ", ".join(f"{k} {_fmt(v, '.4f')}" for k, v in g.revert.items())
        print(f"         {g.group.name:<32} isolated {_fmt(g.isolated_sqnr_db, '.1f'):>6} dB  quantize-one "
              f"{_fmt(g.quantize_one, '.4f')}  revert-one: {rev}")
    pareto = {id(p) for p in r.pareto()}
    print(f"\nverified points ({t.metric}: search part, held-back part; latency: 1 sample on the deployed kernels; "
          "INT8 %: share of MACs onnxruntime runs in 8-bit kernels; * = Pareto)")
    print(f"  {'search':>8} {'held-back':>9} {'target':>6} {'latency ms':>10} {'INT8 %':>6} {'size':>9}  fp/16 point")
    for p in r.points:
        mark = "*" if id(p) in pareto else " "
        print(f"{mark} {_row(p, t.metric)}" + (f"  (failed: {p.error})" if p.error else ""))
    for n in r.notes:
        print(f"note: {n}")
    if r.stopped:
        print(f"stopped  early ({r.stopped}): the best point so far is kept")
    print(f"evaluations {r.evaluations} ({r.search_samples} search + {r.holdout_samples} held-back samples, "
          f"{r.pool}) in {r.elapsed_s:.1f} s")
    b = r.best
    if b is None:
        print("result   no point was verified" + (" before the stop" if r.stopped else ""))
        return
    verdict = "meets" if b.met_holdout else "does NOT meet"
    print(f"best     {b.label}: {t.metric} {_fmt(b.holdout_metric, '.4f')} on held-back data ({verdict} "
          f"{t.describe()}), search part {_fmt(b.search_metric, '.4f')}")
    for line in b.moves:
        print(f"         {line}")
    if b.float_layers:
        print(f"         layers in float: {', '.join(b.float_layers)}")
    if b.int16_layers:
        print(f"         layers in 16-bit: {', '.join(b.int16_layers)}")
